"""Lightning glue: the LightningModule, our callbacks, checkpoint IO and resume, precision and schedules."""
