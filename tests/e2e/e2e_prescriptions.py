"""Prescriptions the end-to-end tests program."""

MORPHINE = """
drug = "morphine"
concentration = "25 mg/mL"
[basal]
steps = [
  { start = "00:00", rate = "2 mg/day" },
  { start = "07:00", rate = "3 mg/day" },
  { start = "22:00", rate = "2.5 mg/day" },
]
[patient_bolus]
dose = "0.2 mg"
duration = "10 min"
lockout = "2 h"
max_per_day = 4
[limits]
max_daily_dose = "6 mg"
low_reservoir = "2 mL"
"""

BACLOFEN = """
drug = "baclofen"
concentration = "500 mcg/mL"
basal = {{ rate = "{rate}" }}
[limits]
max_daily_dose = "800 mcg"
low_reservoir = "2 mL"
"""
