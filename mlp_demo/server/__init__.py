"""The server wing: what serving many visitors needs (a visitor's Session, classes and boards, the
run queue, the shared models, the database, the settings). Imports the core, never ui/."""
