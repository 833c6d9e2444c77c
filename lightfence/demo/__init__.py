"""`lightfence demo`: the whole system live on loopback, with emulated network geography."""
