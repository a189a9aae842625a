"""Records: where files end up (sent/, failed/) and the status snapshot."""
