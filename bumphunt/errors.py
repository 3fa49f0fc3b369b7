"""Exceptions for problems a user can fix; the CLI prints their message on one line."""


class BumphuntError(Exception):
    """Base class of errors caused by the user's input (files, configuration, options)."""


class ConfigError(BumphuntError):
    """A configuration is missing, unreadable, or has a missing, unknown or invalid key."""


class NtupleError(BumphuntError):
    """An ntuple is missing, unreadable, or lacks a tree or branch that is needed."""
