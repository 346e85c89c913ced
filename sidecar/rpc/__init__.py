"""The JSON-RPC face: stdio framing, the LSP lifecycle, the wire types, the handlers.

Everything here speaks the wire (camelCase dicts, LSP frames, pygls); nothing
below it does. The engine, the key pool and the providers hand this layer typed
values and events, and it alone turns them into JSON-RPC messages. Nothing is
imported here: the server's start-up cost is its own modules' (see server.py).
"""
