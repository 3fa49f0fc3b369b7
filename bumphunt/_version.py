from importlib import metadata

__version__ = "0.1.0"


def installed_version(package: str, fallback: str = "not installed") -> str:
    """The installed version of ``package``, or ``fallback`` when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return fallback
