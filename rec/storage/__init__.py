"""Files that are never half-written, mixed or lost (no paddle, no model, no command line).

atomic.py writes a file or a folder aside and renames it in; unit.py makes a folder one
artifact (its run id and the sha256 of each file); snapshot.py reads such a folder whole
while a writer may swap it; lock.py lets one writer at a time into an output folder;
recovery.py finishes what a killed writer left halfway; manifest.py records which inputs
each stage read. Rule: storage knows files, errors, console and paths, and holds signals
back during a swap (rec.process.interrupts); it imports no dataset, model or stage.
"""
