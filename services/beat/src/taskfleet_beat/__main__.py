"""``python -m taskfleet_beat``: run the scheduler in this process (PID 1 in its container).

Beat also does the fleet's housekeeping (leader or standby): a queue scaled to zero still gets its due
delayed work promoted and a dead worker's messages returned.
"""

from taskfleet_core.broker.client import client
from taskfleet_core.reliability import housekeeping
from taskfleet_core.reliability import reaper as _reaper  # noqa: F401  (registers its housekeeping job)
from taskfleet_core.settings import ObservabilitySettings, load

from taskfleet_beat.app import app
from taskfleet_beat.settings import BeatSettings

if __name__ == "__main__":
    schedule_file = load(BeatSettings).beat_schedule_file
    schedule_file.parent.mkdir(parents=True, exist_ok=True)
    housekeeping.start_thread(client)
    app.start(["beat", "--loglevel", load(ObservabilitySettings).log_level, "--schedule", str(schedule_file)])
