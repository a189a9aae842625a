<#
.SYNOPSIS
    Makes magnetd the handler of magnet: links for the current user (no administrator needed).

.DESCRIPTION
    Writes, under HKEY_CURRENT_USER only:

      Software\Classes\magnet                     "URL Protocol" = "", the magnet: URL scheme
        shell\open\command                        "<magnetd.exe>" add --config "<config>" "%1"
      Software\Classes\magnetd.magnet             the same command, as magnetd's own ProgId
      Software\magnetd\Capabilities               with URLAssociations\magnet = magnetd.magnet
      Software\RegisteredApplications             magnetd = Software\magnetd\Capabilities

    The last three make magnetd appear in Settings > Apps > Default apps > "Choose defaults
    by link type" > MAGNET, which Windows 10/11 need when another program (qBittorrent,
    a browser) was chosen there before: Windows protects that choice, so no script can
    change it; pick magnetd there once. Browsers ask the first time a page opens a magnet
    link ("Open magnetd?"); allow it, and tick "Always allow" to stop the question.

    magnetd-handler.reg beside this script writes the same for the default paths.

.PARAMETER Magnetd
    The magnetd.exe to run. Default: the one install-service.ps1 installs.

.PARAMETER Config
    The config "magnetd add" reads to find the inbox. Default: %PROGRAMDATA%\magnetd\magnetd.yaml.

.PARAMETER Unregister
    Remove magnetd's keys (and the magnet key, if it runs magnetd).
#>
[CmdletBinding()]
param(
    [string]$Magnetd = (Join-Path $env:ProgramFiles "magnetd\Scripts\magnetd.exe"),
    [string]$Config = (Join-Path $env:ProgramData "magnetd\magnetd.yaml"),
    [switch]$Unregister
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$classes = "HKCU:\Software\Classes"
$scheme = "$classes\magnet"
$progId = "$classes\magnetd.magnet"
$capabilities = "HKCU:\Software\magnetd\Capabilities"
$registered = "HKCU:\Software\RegisteredApplications"

function Set-Value {
    # Create the key if missing (keeping what it holds), then set one string value; "" is the default value.
    param([string]$Key, [string]$Name, [string]$Value)
    if (-not (Test-Path -LiteralPath $Key)) { New-Item -Path $Key -Force | Out-Null }
    if ($Name -eq "") { $Name = "(Default)" }
    New-ItemProperty -LiteralPath $Key -Name $Name -Value $Value -PropertyType String -Force | Out-Null
}

function Set-Handler {
    param([string]$Key, [string]$Command)
    Set-Value $Key "" "URL:Magnet link"
    Set-Value $Key "URL Protocol" ""
    Set-Value "$Key\DefaultIcon" "" "`"$Magnetd`",0"
    Set-Value "$Key\shell\open\command" "" $Command
}

if ($Unregister) {
    $command = "$scheme\shell\open\command"
    if ((Test-Path -LiteralPath $command) -and ((Get-Item -LiteralPath $command).GetValue("") -like "*magnetd*")) {
        Remove-Item -LiteralPath $scheme -Recurse -Force
    }
    foreach ($key in @($progId, "HKCU:\Software\magnetd")) {
        if (Test-Path -LiteralPath $key) { Remove-Item -LiteralPath $key -Recurse -Force }
    }
    Remove-ItemProperty -LiteralPath $registered -Name "magnetd" -ErrorAction SilentlyContinue
    Write-Host "magnetd no longer handles magnet: links"
    exit 0
}

if (-not (Test-Path -LiteralPath $Magnetd)) {
    throw "magnetd.exe not found at ${Magnetd}: pass -Magnetd C:\path\to\magnetd.exe"
}
$command = '"{0}" add --config "{1}" "%1"' -f $Magnetd, $Config

Set-Handler $scheme $command
Set-Handler $progId $command
Set-Value $capabilities "ApplicationName" "magnetd"
Set-Value $capabilities "ApplicationDescription" "Sends magnet links to qBittorrent through the magnetd inbox"
Set-Value "$capabilities\URLAssociations" "magnet" "magnetd.magnet"
Set-Value $registered "magnetd" "Software\magnetd\Capabilities"

Write-Host "magnet: links now run: $command"
Write-Host "If another program still opens them: Settings > Apps > Default apps >"
Write-Host "  Choose defaults by link type > MAGNET > magnetd"
