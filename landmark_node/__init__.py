"""UDP challenger and timer: measures chips and peer landmarks, signs measurement records."""
