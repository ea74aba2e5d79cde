"""Uploads a file with tuspy 1.1.0, tus's Python client, configured as its users
configure it: the TusIntegrationTests drive Spool's tus door with it.

Prints the upload's URL and offset when done. With --store, the URL is kept in
that file against the file's fingerprint, so a second run after a failure
resumes the same upload from the offset the server reports (tuspy asks with
HEAD). tuspy has no termination; --terminate sends the DELETE with requests,
tuspy's own HTTP library.
"""
import argparse
import os
import sys

import requests
from tusclient import client
from tusclient.storage import filestorage

parser = argparse.ArgumentParser()
parser.add_argument("endpoint")
parser.add_argument("file")
parser.add_argument("--chunk", type=int, default=1 << 20)
parser.add_argument("--name")
parser.add_argument("--sha256", help="the whole file's SHA-256, sent as metadata")
parser.add_argument("--checksum", action="store_true", help="Upload-Checksum (sha1) on every PATCH")
parser.add_argument("--store", help="keep the upload's URL here, to resume after a failure")
parser.add_argument("--token")
parser.add_argument("--terminate", action="store_true", help="DELETE the upload once done")
args = parser.parse_args()

headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
tus = client.TusClient(args.endpoint, headers=headers)
metadata = {"filename": args.name or os.path.basename(args.file)}
if args.sha256:
    metadata["sha256"] = args.sha256
options = dict(chunk_size=args.chunk, metadata=metadata, upload_checksum=args.checksum)
if args.store:
    options.update(store_url=True, url_storage=filestorage.FileStorage(args.store))
uploader = tus.uploader(args.file, **options)
uploader.upload()
print(uploader.url, uploader.offset)
if args.terminate:
    answer = requests.delete(uploader.url, headers=dict(headers, **{"Tus-Resumable": "1.0.0"}))
    print("terminated", answer.status_code)
sys.stdout.flush()
