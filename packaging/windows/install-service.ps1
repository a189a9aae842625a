<#
.SYNOPSIS
    Installs magnetd as a Windows service (pywin32), in a venv under Program Files.

.DESCRIPTION
    Run from an elevated PowerShell (Windows PowerShell 5.1 or PowerShell 7):

        powershell -ExecutionPolicy Bypass -File packaging\windows\install-service.ps1

    1. creates a venv in $InstallDir (default: $env:ProgramFiles\magnetd);
    2. installs "magnetd[windows]" (magnetd and pywin32) from -Source with pip;
    3. runs pywin32_postinstall -install (copies pywin32's DLLs to System32);
    4. copies pythonXY.dll, the VC runtime and pywintypesXY.dll beside the venv's
       pythonservice.exe, so that the service finds them without a user's PATH (else: error
       1053 on start);
    5. creates $DataDir (default: $env:ProgramData\magnetd) with magnetd.yaml from
       magnetd.yaml.example, unless it exists;
    6. magnetd service install --startup auto --config $DataDir\magnetd.yaml,
       and restart-on-crash recovery actions;
    7. checks the config and starts the service if it is valid.

    Running it again upgrades magnetd in place and keeps the config. Run it again after
    upgrading Python too (step 4 copies the Python DLL).

.PARAMETER Source
    The magnetd source folder (holding pyproject.toml), or a folder of wheels.
    Default: the folder two levels above this script.

.PARAMETER Python
    A python.exe, 3.11 or later, installed for all users from python.org (not the
    Microsoft Store one, which a service cannot run). Default: python on the PATH.
#>
#Requires -RunAsAdministrator
[CmdletBinding()]
param(
    [string]$Source = (Join-Path $PSScriptRoot "..\.."),
    [string]$Python = "python",
    [string]$InstallDir = (Join-Path $env:ProgramFiles "magnetd"),
    [string]$DataDir = (Join-Path $env:ProgramData "magnetd"),
    [ValidateSet("auto", "manual")]
    [string]$Startup = "auto"
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

function Invoke-Checked {
    # Run a program; stop the script when it fails (native programs do not throw by themselves).
    param([Parameter(Mandatory)][string]$Exe, [string[]]$Arguments = @())
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "failed with exit code ${LASTEXITCODE}: $Exe $($Arguments -join ' ')"
    }
}

$Source = (Resolve-Path -LiteralPath $Source).Path
$venvPython = Join-Path $InstallDir "Scripts\python.exe"
$magnetd = Join-Path $InstallDir "Scripts\magnetd.exe"
$config = Join-Path $DataDir "magnetd.yaml"

Write-Host "==> Python"
# No double quotes inside: Windows PowerShell 5.1 mangles them in native arguments.
& $Python -c 'import sys; raise SystemExit(sys.version_info < (3, 11) or ''WindowsApps'' in sys.executable)'
if ($LASTEXITCODE -ne 0) {
    throw "$Python is older than 3.11 or from the Microsoft Store: install Python from python.org for all users, then pass -Python C:\path\to\python.exe"
}

if (Get-Service -Name "magnetd" -ErrorAction SilentlyContinue) {
    Write-Host "==> stopping the running service (its files are in use)"
    Stop-Service -Name "magnetd"
}

Write-Host "==> venv in $InstallDir"
if (-not (Test-Path -LiteralPath $venvPython)) {
    Invoke-Checked $Python @("-m", "venv", $InstallDir)
}

Write-Host "==> pip install magnetd[windows] from $Source"
if (Test-Path -LiteralPath (Join-Path $Source "pyproject.toml")) {
    Invoke-Checked $venvPython @("-m", "pip", "install", "--upgrade", ($Source + "[windows]"))
} else {
    Invoke-Checked $venvPython @("-m", "pip", "install", "--upgrade", "--find-links", $Source, "magnetd[windows]")
}

Write-Host "==> pywin32_postinstall -install"
$postinstall = Join-Path $InstallDir "Scripts\pywin32_postinstall.exe"  # pywin32 310 and later
if (-not (Test-Path -LiteralPath $postinstall)) {
    $postinstall = Join-Path $InstallDir "Scripts\pywin32_postinstall.py"  # pywin32 306 to 309
    Invoke-Checked $venvPython @($postinstall, "-install")
} else {
    Invoke-Checked $postinstall @("-install")
}

Write-Host "==> DLLs beside pythonservice.exe"
# pywin32 moves pythonservice.exe into the venv root when the service is installed. Windows looks
# for the DLLs it needs beside it, in System32 and on the machine PATH, never on a user's PATH:
# put pythonXY.dll, the VC runtime and pywintypesXY.dll beside it.
$basePrefix = (& $venvPython -c 'import sys; print(sys.base_prefix)' | Out-String).Trim()
if ($LASTEXITCODE -ne 0) { throw "cannot ask $venvPython for its base Python" }
Get-ChildItem -LiteralPath $basePrefix -Filter "*.dll" |
    Where-Object { $_.Name -match '^(python3\d*|vcruntime140(_1)?)\.dll$' } |
    Copy-Item -Destination $InstallDir -Force
Get-ChildItem -LiteralPath (Join-Path $InstallDir "Lib\site-packages\pywin32_system32") -Filter "*.dll" |
    Copy-Item -Destination $InstallDir -Force

Write-Host "==> $DataDir"
New-Item -ItemType Directory -Force -Path $DataDir | Out-Null
if (-not (Test-Path -LiteralPath $config)) {
    $example = Join-Path $Source "magnetd.yaml.example"
    if (Test-Path -LiteralPath $example) {
        Copy-Item -LiteralPath $example -Destination $config
        Write-Host "    created $config from magnetd.yaml.example: edit it"
    } else {
        Write-Warning "no magnetd.yaml.example in $Source; write $config yourself"
    }
}

Write-Host "==> service magnetd ($Startup start)"
Invoke-Checked $magnetd @("service", "install", "--startup", $Startup, "--config", $config)
# Restart 1 minute after a crash (a process that died without reporting STOPPED); an invalid
# config reports STOPPED with an error code, which is not retried (as systemd's exit code 78).
Invoke-Checked "sc.exe" @("failure", "magnetd", "reset=", "86400", "actions=", "restart/60000/restart/60000/restart/60000")

Write-Host "==> check the config"
& $magnetd check-config --config $config
if ($LASTEXITCODE -eq 0) {
    Invoke-Checked $magnetd @("service", "start")
} else {
    Write-Warning "The service is installed but not started. Fix $config (the service runs as LocalSystem: prefer password_file to password_env), then run:  & '$magnetd' service start"
    exit 1
}

Write-Host ""
Write-Host "magnetd runs as the Windows service 'magnetd'."
Write-Host "  status:  & '$magnetd' status --config '$config'"
Write-Host "  log:     the state folder of $config, file magnetd.log"
Write-Host "  reload:  sc.exe control magnetd paramchange"
Write-Host "  remove:  & '$magnetd' service remove"
