"""Local AWS for the functions: a moto server (S3, SQS, Secrets Manager), the
lake bucket, the three queues with their dead-letter queues (redrive as in
template.yaml) and a warehouse secret pointing at the local Postgres.

    python3 infra/local/local_stack.py up      # start moto, create resources, write .local/env
    python3 infra/local/local_stack.py down    # stop moto

The environment file holds what template.yaml sets on the functions.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".local"
PORT = int(os.environ.get("MDP_LOCAL_MOTO_PORT", "5055"))
ENDPOINT = f"http://127.0.0.1:{PORT}"
BUCKET = "mdp-local-lake"
MAX_RECEIVE_COUNT = 5
# Visibility timeouts of template.yaml (6 x the consumer's timeout).
VISIBILITY = {"fetch": 1800, "transform": 720, "load": 1800}


def client(service):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def answering():
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=0.5):
            return True
    except OSError:
        return False


def start_moto():
    if answering():
        return
    STATE.mkdir(exist_ok=True)
    log = open(STATE / "moto.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(PORT)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (STATE / "moto.pid").write_text(str(proc.pid))
    for _ in range(100):
        if answering():
            return
        time.sleep(0.2)
    sys.exit(f"moto did not start; see {STATE / 'moto.log'}")


def up(postgres_url):
    start_moto()
    s3, sqs, sm = client("s3"), client("sqs"), client("secretsmanager")
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    env = {
        "AWS_ENDPOINT_URL": ENDPOINT,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "MARKET_DATA_LAKE_URI": f"s3://{BUCKET}/lake",
        "MDP_LOG_FORMAT": "json",
    }
    for stage in ("fetch", "transform", "load"):
        dlq = sqs.create_queue(QueueName=f"mdp-local-{stage}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(QueueName=f"mdp-local-{stage}", Attributes={
            "VisibilityTimeout": str(VISIBILITY[stage]),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}),
        })["QueueUrl"]
        env[f"{stage.upper()}_QUEUE_URL"] = url
        env[f"{stage.upper()}_DLQ_URL"] = dlq
    # The warehouse connection lives in a secret, as in AWS.
    from urllib.parse import urlparse
    pg = urlparse(postgres_url)
    secret = json.dumps({"engine": "postgres", "host": pg.hostname or "127.0.0.1", "port": pg.port or 5432,
                         "username": pg.username or "postgres", "password": pg.password or "",
                         "dbname": (pg.path or "/test").lstrip("/")})
    try:
        arn = sm.create_secret(Name="mdp-local-warehouse", SecretString=secret)["ARN"]
    except sm.exceptions.ResourceExistsException:
        arn = sm.put_secret_value(SecretId="mdp-local-warehouse", SecretString=secret)["ARN"]
    env["WAREHOUSE_SECRET_ARN"] = arn
    STATE.mkdir(exist_ok=True)
    (STATE / "env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    print(f"local AWS at {ENDPOINT}; environment in {STATE / 'env'}")
    return env


def down():
    pid_file = STATE / "moto.pid"
    if pid_file.exists():
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass
        pid_file.unlink()
    print("local AWS stopped")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "up":
        up(os.environ.get("MDP_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"))
    elif command == "down":
        down()
    else:
        sys.exit("usage: local_stack.py up|down")
