"""Pretraining objectives, one per encoder family (registered in `taskalign.encoders.base.PRETRAINERS`)."""
