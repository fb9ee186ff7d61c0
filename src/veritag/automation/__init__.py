"""Automation with a guarantee: calibrate a labeler's confidence, then accept its labels only
above a threshold that an audit sample proves meets the target accuracy (pure numpy/scipy and
scikit-learn; never the store or the web)."""

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .audit import BiasAudit, SliceAudit, bias_audit, error_bounds, label_shift
    from .calibration import (
        CALIBRATION_METHODS,
        IdentityCalibration,
        IsotonicCalibration,
        ReliabilityCurve,
        TemperatureScaling,
        expected_calibration_error,
        fit_calibrator,
        negative_log_likelihood,
        reliability_curve,
    )
    from .policy import (
        Decision,
        Plan,
        automate,
        choose_threshold,
        clopper_pearson_lower,
        min_audit_for,
        simulate,
    )

#: Where each public name lives, imported on first use: the server reads automation runs
#: (``automation.project``) at start without paying for scikit-learn, which calibration needs.
_HOMES = {
    **dict.fromkeys(
        ("BiasAudit", "SliceAudit", "bias_audit", "error_bounds", "label_shift"), ".audit"
    ),
    **dict.fromkeys(
        (
            "CALIBRATION_METHODS",
            "IdentityCalibration",
            "IsotonicCalibration",
            "ReliabilityCurve",
            "TemperatureScaling",
            "expected_calibration_error",
            "fit_calibrator",
            "negative_log_likelihood",
            "reliability_curve",
        ),
        ".calibration",
    ),
    **dict.fromkeys(
        (
            "Decision",
            "Plan",
            "automate",
            "choose_threshold",
            "clopper_pearson_lower",
            "min_audit_for",
            "simulate",
        ),
        ".policy",
    ),
}

__all__ = [
    "CALIBRATION_METHODS",
    "BiasAudit",
    "Decision",
    "IdentityCalibration",
    "IsotonicCalibration",
    "Plan",
    "ReliabilityCurve",
    "SliceAudit",
    "TemperatureScaling",
    "automate",
    "bias_audit",
    "choose_threshold",
    "clopper_pearson_lower",
    "error_bounds",
    "expected_calibration_error",
    "fit_calibrator",
    "label_shift",
    "min_audit_for",
    "negative_log_likelihood",
    "reliability_curve",
    "simulate",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
