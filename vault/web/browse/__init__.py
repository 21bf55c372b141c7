"""The pages a person uses: Datasette's hooks, the address book, inbox and notebook, cells in words, past states,
the time machine, timelines and forms."""
