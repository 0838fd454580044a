"""aos-frontend: the operator's web UI, a standard skill.

Its service face (``service.py``) serves a Starlette app (``app.py``) with
uvicorn inside the service process: a JSON API under ``/api`` that maps onto
syscalls made as ``service:aos-frontend`` (so the page can do nothing the
scopes in SKILL.md do not allow), Server-Sent Events from ``events.subscribe``
for live updates, and a static single page (``static/``: vanilla JS, no build
step) that renders everything from history. The kernel never imports it;
removing the skill removes the UI. See docs/skills/aos-frontend.md.
"""
