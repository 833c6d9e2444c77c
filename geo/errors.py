"""Typed errors of the geo package; every message is meant for the user."""

from __future__ import annotations


class GeoError(ValueError):
    """Base of every geo error; the message is user-facing."""


class InvalidMeasurementError(GeoError):
    """A measurement is not physically meaningful (NaN, latitude 95, RTT <= 0, ...)."""


class UnknownCountryError(GeoError):
    """An ISO 3166-1 alpha-3 code that the bundled boundaries do not know."""


class InvalidGeometryError(GeoError):
    """Malformed or unusable GeoJSON."""


class InsufficientDataError(GeoError):
    """Too little data for the requested computation (e.g. a single landmark)."""


class InvalidLicenceError(GeoError):
    """A licence document that is malformed or empty."""
