"""The email queue's worker: sends mail over SMTP (seed 000 ``email_tasks``)."""
