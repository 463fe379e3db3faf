#!/usr/bin/env bash
# Ship sagestep to an AWS account: push every step image (containers/*/) to ECR and record
# their digests, create or update the SageMaker pipeline from pipeline.json (unchanged), and
# with --start start an execution whose image parameters are the pushed digests (--wait: until
# it ends). pipeline.json names no account. Needs the `docker` and `aws` CLIs and credentials.
#
#   docker/publish-ecr.sh --account 123456789012 --region eu-west-1 \
#     --role-arn arn:aws:iam::123456789012:role/SageMakerExecution \
#     --artifact-root s3://my-bucket/auto-mpg [--input-data s3://my-bucket/raw/auto-mpg.data] \
#     [--pipeline-name sagestep-auto-mpg] [--version <Cargo.toml's>] [--start [--wait]] \
#     [--record out/published.json] [--endpoint-url URL] [--registry HOST:PORT] [--dry-run]
#
# --endpoint-url sends every AWS call there (an API stand-in); --registry pushes to that registry
# instead of the account's ECR (a mirror, or a test registry). --dry-run prints every command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

account="" region="" role_arn="" artifact_root="" input_data="" endpoint_url="" registry=""
pipeline_name="sagestep-auto-mpg" start=false wait=false dry_run=false
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
record="out/published.json" wait_timeout=${SAGESTEP_PUBLISH_WAIT_SECS:-7200}
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --account) account=$2; shift 2 ;;
    --region) region=$2; shift 2 ;;
    --role-arn) role_arn=$2; shift 2 ;;
    --artifact-root) artifact_root=$2; shift 2 ;;
    --input-data) input_data=$2; shift 2 ;;
    --pipeline-name) pipeline_name=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --record) record=$2; shift 2 ;;
    --endpoint-url) endpoint_url=$2; shift 2 ;;
    --registry) registry=$2; shift 2 ;;
    --start) start=true; shift ;;
    --wait) wait=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) usage ;;
    *) echo "publish-ecr: unknown argument $1" >&2; usage ;;
  esac
done
for required in account region role_arn artifact_root; do
  if [ -z "${!required}" ]; then
    echo "publish-ecr: --${required//_/-} is required" >&2
    exit 2
  fi
done
if $start && [ -z "$input_data" ]; then
  echo "publish-ecr: --start needs --input-data (the pipeline's InputData has no default)" >&2
  exit 2
fi
if $wait && ! $start; then
  echo "publish-ecr: --wait needs --start" >&2
  exit 2
fi
[[ "$account" =~ ^[0-9]{12}$ ]] || { echo "publish-ecr: --account must be a 12-digit AWS account id" >&2; exit 2; }
[[ "$artifact_root" == s3://* ]] || { echo "publish-ecr: --artifact-root must be an s3:// URI" >&2; exit 2; }

registry=${registry:-"$account.dkr.ecr.$region.amazonaws.com"}
steps=()
for dir in containers/*/; do steps+=("$(basename "$dir")"); done
aws_cli="aws --region $region${endpoint_url:+ --endpoint-url $endpoint_url}"

# Print the command (dry run) or run it. Commands are strings so that pipes print as written.
run() {
  if $dry_run; then echo "$1"; else echo "+ $1" >&2; eval "$1"; fi
}

if ! $dry_run; then
  command -v aws >/dev/null || { echo "publish-ecr: the aws CLI is not installed" >&2; exit 1; }
  for step in "${steps[@]}"; do
    docker image inspect "sagestep-$step:$version" >/dev/null 2>&1 \
      || { echo "publish-ecr: image sagestep-$step:$version is missing; run docker/build-images.sh" >&2; exit 1; }
  done
fi

run "$aws_cli ecr get-login-password | docker login --username AWS --password-stdin $registry >&2"
declare -A digest
for step in "${steps[@]}"; do
  repo="sagestep-$step"
  run "$aws_cli ecr describe-repositories --repository-names $repo >/dev/null 2>&1 || $aws_cli ecr create-repository --repository-name $repo --image-scanning-configuration scanOnPush=true --image-tag-mutability IMMUTABLE >/dev/null"
  run "docker tag $repo:$version $registry/$repo:$version"
  run "docker push --quiet $registry/$repo:$version >&2"
  if $dry_run; then
    digest[$step]="$registry/$repo@sha256:..."
  else
    # The digest the registry answered for this push: the image as SageMaker will pull it.
    digest[$step]=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$registry/$repo:$version" \
      | grep -m1 "^$registry/$repo@sha256:") \
      || { echo "publish-ecr: no digest recorded for $registry/$repo:$version after the push" >&2; exit 1; }
  fi
done

if ! $dry_run; then
  mkdir -p "$(dirname "$record")"
  {
    printf '{\n  "registry": "%s",\n  "version": "%s",\n  "pipeline": "%s",\n  "images": {' "$registry" "$version" "$pipeline_name"
    sep=""
    for step in "${steps[@]}"; do printf '%s\n    "%s": "%s"' "$sep" "$step" "${digest[$step]}"; sep=","; done
    printf '\n  }\n}\n'
  } > "$record.partial"
  mv "$record.partial" "$record"
  echo "publish-ecr: digests recorded in $record" >&2
fi

definition="file://$PWD/pipeline.json"
upsert_create="$aws_cli sagemaker create-pipeline --pipeline-name $pipeline_name --pipeline-definition $definition --role-arn $role_arn"
upsert_update="$aws_cli sagemaker update-pipeline --pipeline-name $pipeline_name --pipeline-definition $definition --role-arn $role_arn"
if $dry_run; then
  echo "# create the pipeline, or update it if it exists:"
  echo "$upsert_create"
  echo "$upsert_update"
elif $aws_cli sagemaker describe-pipeline --pipeline-name "$pipeline_name" >/dev/null 2>&1; then
  run "$upsert_update >/dev/null"
else
  run "$upsert_create >/dev/null"
fi

# Each image goes to the parameter pipeline.json declares for it (`TrainImage` for train, ...).
parameters=""
for step in "${steps[@]}"; do
  name="${step^}Image"
  if grep -q "\"Name\": \"$name\"" pipeline.json; then
    parameters+=" Name=$name,Value=${digest[$step]}"
  fi
done
parameters+=" Name=ExecutionRoleArn,Value=$role_arn Name=ArtifactRoot,Value=$artifact_root"
[ -n "$input_data" ] && parameters+=" Name=InputData,Value=$input_data"
start_command="$aws_cli sagemaker start-pipeline-execution --pipeline-name $pipeline_name --query PipelineExecutionArn --output text --pipeline-parameters$parameters"
if ! $start && ! $dry_run; then
  echo "to start an execution:" >&2
  echo "  $start_command" >&2
  exit 0
fi
$dry_run && echo "# start an execution (with --start):"
if $dry_run; then
  echo "$start_command"
  exit 0
fi
echo "+ $start_command" >&2
arn=$(eval "$start_command")
echo "$arn"
$wait || exit 0
deadline=$((SECONDS + wait_timeout))
while :; do
  status=$($aws_cli sagemaker describe-pipeline-execution --pipeline-execution-arn "$arn" \
    --query PipelineExecutionStatus --output text)
  case "$status" in
    Succeeded) echo "publish-ecr: execution $arn succeeded" >&2; exit 0 ;;
    Failed|Stopped)
      reason=$($aws_cli sagemaker describe-pipeline-execution --pipeline-execution-arn "$arn" \
        --query FailureReason --output text 2>/dev/null || true)
      echo "publish-ecr: execution $arn ended $status: $reason" >&2
      exit 1 ;;
  esac
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "publish-ecr: execution $arn still $status after ${wait_timeout}s" >&2
    exit 1
  fi
  sleep 15
done
