"""Agents and their states, teams and skills, shifts, queues and routing (ACD), caller lookup and
the screen pop, call control from the desktop, and the HTTP/WebSocket API the desktop uses."""
