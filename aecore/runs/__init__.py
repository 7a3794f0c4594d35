"""One way to train and save: the request, the pipeline, the job registry and the training process."""
