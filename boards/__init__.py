# Board descriptions: pin maps and calibration constants. Firmware logic never names a pin.
