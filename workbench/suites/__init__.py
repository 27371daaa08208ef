"""Prompt suites (DESIGN §7): schema and loader, assertions, promptfoo import, runner."""
