"""The job domain shared by the API and the bridge: models, states, the message contract,
storage and the database. Nothing here does DSP, talks to Ray or serves HTTP."""
