"""Plant models: heater, cells, chargers, ADC, power stage and puffs, with their parameters."""
