"""Beat's Celery app: a producer only, with seed 000's schedule, sending only while it holds the leader lock."""

from taskfleet_core.settings import load
from taskfleet_core.tasks.app import create_app

from taskfleet_beat import metrics as beat_metrics
from taskfleet_beat.leader import canary_catch_up, canary_schedule
from taskfleet_beat.schedule import beat_schedule, catch_up_windows
from taskfleet_beat.settings import BeatSettings

app = create_app("taskfleet-beat")
app.conf.beat_schedule = beat_schedule(load(BeatSettings)) | canary_schedule(load(BeatSettings))
#: Catch-up windows set per entry (seconds); the other entries use catchup.default_window of their period.
app.conf.taskfleet_beat_catch_up = catch_up_windows(load(BeatSettings)) | canary_catch_up(load(BeatSettings))
app.conf.beat_scheduler = "taskfleet_beat.leader:LeaderScheduler"
beat_metrics.instrument(app)  # sends per entry, next due time, /metrics on METRICS_PORT
