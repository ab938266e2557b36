"""Prescriptions the end-to-end tests program."""

from pathlib import Path

# The worked example (morphine on three flexible steps, with patient boluses).
MORPHINE = (Path(__file__).resolve().parents[2] / "examples" / "prescriptions"
            / "morphine_flex.toml").read_text()

BACLOFEN = """
drug = "baclofen"
concentration = "500 mcg/mL"
basal = {{ rate = "{rate}" }}
[limits]
max_daily_dose = "800 mcg"
low_reservoir = "2 mL"
[titration]
screening_dose = "50 mcg"
[catheter]                       # Prometra: 0.0026 mL/cm; 77 cm after trimming: 200.2 uL
model = "Prometra 11823"
length = "77 cm"
volume_per_cm = "2.6 uL"
"""

# Ziconotide at the strength of the 20 mL vial, for a start.
ZICONOTIDE = """
drug = "ziconotide"
concentration = "25 mcg/mL"
basal = {{ rate = "{rate}" }}
[limits]
max_daily_dose = "6 mcg"
low_reservoir = "2 mL"
"""
