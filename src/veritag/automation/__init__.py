"""Automation with a guarantee: calibrate a labeler's confidence, then accept its labels only
above a threshold that an audit sample proves meets the target accuracy (pure numpy/scipy and
scikit-learn; never the store or the web)."""

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
