"""aos-budget: a spending budget per agent, a standard skill (off unless listed).

Policy in a skill, not the kernel: its service face (``service.py``) implements
``compute.before`` and refuses an agent's next model call once its model calls
in the window (``session.usage`` with ``since``) have passed the budget that
``aoscb.json``'s ``budgets`` gives it. See docs/skills/aos-budget.md.
"""
