"""Prompt texts, one TOML file per language (package data; see ``ivr.prompts``)."""
