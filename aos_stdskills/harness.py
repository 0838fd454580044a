"""The standard harness, declared as any harness package declares its own (entry
point group ``aos.harnesses``): the four standard skills and the node's default
model. A node that names no harness has these settings as its built-in defaults;
``aos harness use standard`` names it explicitly."""

from aos import DEFAULT_MODEL, STANDARD_SKILLS

STANDARD = {
    "description": "The standard harness: context engine (aos-context), skill discovery "
    "(aos-skill), agent-to-agent messaging (aos-a2a) and the web UI (aos-frontend)",
    "skills": list(STANDARD_SKILLS),
    "aoscb": {"model": DEFAULT_MODEL, "default_skills": list(STANDARD_SKILLS)},
}
