"""The embedded student: a small Llama built and pre-trained on the suite's drills (the `student` stage)."""
