"""aos-a2a: agent-to-agent messaging, a standard skill.

Its context face is SKILL.md and ``scripts/a2a`` (``__main__``); its service
face (``service.py``) holds the policy and the reply protocol; in process it
contributes only the operator's ``aos a2a log`` (``cli``, its entry point).
"""
