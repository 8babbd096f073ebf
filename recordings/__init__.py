"""Storing, post-processing, finding, streaming and scoring recordings; access audit; retention."""
