# heatrig, processor in the loop: this board has no heater hardware, so the
# simulated plant (sim/) is wired in before main.py starts the firmware,
# unchanged. Deployed as /boot.py by `heatrig deploy`.
import sim.pil

sim.pil.boot()
