"""Skills: the SKILL.md format, discovery and the registry, hot reload, the context face."""
