"""UDP I/O shared by the landmark and the agent: the responder server thread and the kernel
socket timestamp helpers (SO_TIMESTAMPNS, SO_TIMESTAMPING send stamps and their pairing).

The protocol itself stays sans-I/O in `protocol/`; this package only moves datagrams and reads
clocks, so the landmark (`landmark_node`) and the agent (`device_agent`) share it without
importing each other.
"""
