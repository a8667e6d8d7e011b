from taskfleet_core.tasks.worker import run_worker

from taskfleet_worker_default.app import app

if __name__ == "__main__":
    run_worker(app)
