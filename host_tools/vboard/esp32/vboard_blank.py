# Empty on purpose: vboard_esp32._Module imports it afresh for each module it builds.
