"""aos-skill: the agent's ``skill list`` / ``skill load NAME`` / ``skill unload NAME``.

A context-face skill: its ``scripts/skill`` runs this module with the kernel's
interpreter (``AOS_PYTHON``); every action is a syscall made with the agent's
own token (``AOS_TOKEN``) over ``AOS_SOCKET``, for the agent's session
(``AOS_SESSION_ID``). It registers no hooks.
"""
