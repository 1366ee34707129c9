"""Scenario configuration: schema, units, loading with line-numbered errors."""

from simsip.config.loader import ConfigError, json_schema, load_config, load_config_text, models_dir, resolved_yaml
from simsip.config.schema import Fault, Fleet, Ha, Network, PhoneProfile, Registrar, Scenario

__all__ = [
    "ConfigError", "Fault", "Fleet", "Ha", "Network", "PhoneProfile", "Registrar", "Scenario",
    "json_schema", "load_config", "load_config_text", "models_dir", "resolved_yaml",
]
