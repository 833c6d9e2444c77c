"""Key and certificate files: the file side of `protocol.keys` and `protocol.certs`.

`protocol/` stays pure (no files, sockets or clocks); loading and saving the Ed25519 key files,
certificate files and the CA public key file happens here, as does the `lightfence keys` CLI.
Errors are the protocol's own (`KeyFileError`, `CertificateError`), so a caller that handles a
malformed certificate handles an unreadable certificate file the same way.
"""
