"""aos-mcp: the project's MCP servers as commands, a standard skill.

Its context face is SKILL.md and ``scripts/mcp`` (``__main__``); its service
face (``service.py``) holds one warm client session per server (``servers``)
configured in ``.mcp.json`` (``config``); in process it contributes the
operator's ``aos mcp`` commands (``cli``, its entry point).
"""
