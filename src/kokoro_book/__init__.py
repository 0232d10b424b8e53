"""kokoro_book: builds the companion book (papermill runs, stamps, staging, Jupyter Book, Colab copies, PDF).

It imports :mod:`kokoro_nb`; :mod:`kokoro_nb` never imports it.
"""
