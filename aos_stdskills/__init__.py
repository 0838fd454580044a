"""The standard skills: AgentOS's default harness.

Each standard skill is a skill like any other: a directory with a SKILL.md,
registered through the ``aos.skills`` entry point group. The kernel (``aos``)
never imports this package. The skills arrive with their issues: aos-context
and aos-skill with the ReActUnit, aos-a2a with messaging, aos-frontend with
the web UI.
"""
