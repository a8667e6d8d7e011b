"""``python -m taskfleet_beat``: run the scheduler in this process (PID 1 in its container)."""

from taskfleet_core.settings import load_settings

from taskfleet_beat.app import app

if __name__ == "__main__":
    settings = load_settings()
    settings.beat_schedule_file.parent.mkdir(parents=True, exist_ok=True)
    app.start(["beat", "--loglevel", settings.log_level, "--schedule", str(settings.beat_schedule_file)])
