"""Sans-I/O wire format and cryptography shared by landmark, agent and verifier."""
