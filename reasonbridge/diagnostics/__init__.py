"""Opt-in diagnostics that explain one student beyond accuracy: step metrics and teacher-forced accuracy."""
