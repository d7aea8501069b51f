"""deploy/fargate/collab.yaml: cfn-lint clean, and wired the way the server
needs it (health path, ping vs. idle timeout, TLS + AUTH Redis, drain vs.
stop timeout and deregistration delay, least-privilege secrets and networks,
JWT secret, allowed origins, the private operational port)."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import pytest

from collab.access import OriginPolicy, TokenVerifier
from collab.config import Settings

from .artifacts import (
    REPO,
    TEMPLATE,
    get_att,
    image,
    only_resource,
    option,
    ref,
    require_tool,
    resources_of_type,
    run_tool,
    template,
)

DEFAULTS = Settings()
README = REPO / "deploy" / "fargate" / "README.md"


def _props(kind: str) -> dict[str, Any]:
    return dict(only_resource(kind)[1]["Properties"])


def _container() -> dict[str, Any]:
    (container,) = _props("AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    return dict(container)


def _environment() -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in _container()["Environment"]}


def _secrets() -> dict[str, Any]:
    return {s["Name"]: s["ValueFrom"] for s in _container()["Secrets"]}


def _port_mappings() -> dict[str, int]:
    return {m["Name"]: m["ContainerPort"] for m in _container()["PortMappings"]}


def _metrics_port() -> int:
    return int(_environment()["COLLAB_METRICS_PORT"])


def _parameter_default(name: str) -> Any:
    return template()["Parameters"][name]["Default"]


def _attributes(props: dict[str, Any], key: str) -> dict[str, Any]:
    return {a["Key"]: a["Value"] for a in props[key]}


def _drain_timings() -> dict[str, dict[str, int]]:
    return dict(template()["Mappings"]["DrainTimings"])


def test_cfn_lint_is_clean() -> None:
    cfn_lint = require_tool("cfn-lint")
    result = run_tool([cfn_lint, "--", str(TEMPLATE)], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_target_group_health_check_is_the_liveness_path() -> None:
    tg = _props("AWS::ElasticLoadBalancingV2::TargetGroup")
    assert tg["HealthCheckPath"] == "/healthz" == DEFAULTS.health_path
    assert tg["Protocol"] == "HTTP"
    assert tg["TargetType"] == "ip"
    port = int(option(image().argv, "--port"))
    assert tg["Port"] == port
    assert _port_mappings()["http"] == port
    (lb,) = _props("AWS::ECS::Service")["LoadBalancers"]
    assert lb["ContainerPort"] == port and lb["ContainerName"] == _container()["Name"]


def test_container_health_check_matches_the_image() -> None:
    check = _container()["HealthCheck"]["Command"]
    assert check[0] == "CMD"
    assert check[1:] == image().healthcheck
    # And the image's command is what runs: no override in the task.
    assert "Command" not in _container() and "EntryPoint" not in _container()


def test_health_check_goes_to_the_operational_port_only() -> None:
    """COLLAB_METRICS_PORT is set; the ALB checks health there, and nothing
    else of the ALB can reach that port: no target group or listener has it
    as a traffic port, so a request path, however spelled, never gets there."""
    metrics = _metrics_port()
    public = int(option(image().argv, "--port"))
    assert metrics != public and 1024 <= metrics <= 65535
    assert Settings.from_env({"COLLAB_METRICS_PORT": str(metrics)}).metrics_port == metrics
    tg = _props("AWS::ElasticLoadBalancingV2::TargetGroup")
    assert tg["HealthCheckPort"] == str(metrics)
    assert _port_mappings() == {"http": public, "metrics": metrics}
    for res in resources_of_type("AWS::ElasticLoadBalancingV2::TargetGroup").values():
        assert res["Properties"]["Port"] == public
    (lb,) = _props("AWS::ECS::Service")["LoadBalancers"]
    assert lb["ContainerPort"] == public
    listeners = [
        r["Properties"] for r in resources_of_type("AWS::ElasticLoadBalancingV2::Listener").values()
    ]
    for listener in listeners:
        for action in listener["DefaultActions"]:
            assert action["Type"] in ("forward", "redirect")
            if action["Type"] == "forward":
                assert action["TargetGroupArn"] == ref("TargetGroup")
    for rule in resources_of_type("AWS::ElasticLoadBalancingV2::ListenerRule").values():
        for action in rule["Properties"]["Actions"]:
            assert action["Type"] != "forward", "a rule forwarding elsewhere"


def test_jwt_secret_comes_from_secrets_manager() -> None:
    assert "COLLAB_JWT_SECRET" not in _environment(), "a secret in plain Environment"
    secret = _secrets()["COLLAB_JWT_SECRET"]
    assert secret == {"Fn::If": ["CreateJwtSecret", ref("JwtSecret"), ref("JwtSecretArn")]}
    assert template()["Conditions"]["CreateJwtSecret"] == {"Fn::Equals": [ref("JwtSecretArn"), ""]}
    generated = template()["Resources"]["JwtSecret"]
    assert generated["Type"] == "AWS::SecretsManager::Secret"
    assert generated["Condition"] == "CreateJwtSecret"
    generate = generated["Properties"]["GenerateSecretString"]
    # Long enough for collab's HS256 minimum, and nothing to escape.
    assert generate["PasswordLength"] >= 32
    assert generate["ExcludePunctuation"] is True and generate["IncludeSpace"] is False
    TokenVerifier.from_secret("A1" * (generate["PasswordLength"] // 2))
    assert template()["Outputs"]["JwtSecretArnInUse"]["Value"] == secret
    # An existing secret is named by its full ARN (the execution role names it exactly).
    pattern = template()["Parameters"]["JwtSecretArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, "")
    assert re.fullmatch(pattern, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:jwt-AbC")
    assert not re.fullmatch(pattern, "jwt-signing-key")


def test_jwt_audience_and_issuer_are_parameters() -> None:
    env = _environment()
    assert env["COLLAB_JWT_AUDIENCE"] == ref("JwtAudience")
    assert env["COLLAB_JWT_ISSUER"] == ref("JwtIssuer")
    for name in ("JwtAudience", "JwtIssuer"):
        assert _parameter_default(name) == ""  # empty: not checked, as in collab


def test_allowed_origins_is_a_required_parameter() -> None:
    assert _environment()["COLLAB_ALLOWED_ORIGINS"] == ref("AllowedOrigins")
    param = template()["Parameters"]["AllowedOrigins"]
    assert "Default" not in param and param["MinLength"] == 1
    # The example in its description is a value collab accepts.
    match = re.search(r"e\.g\. (\S+)", param["Description"])
    assert match is not None
    assert OriginPolicy.parse(match[1]).allows("https://app.example.com", False)


def test_alb_idle_timeout_exceeds_ping_interval() -> None:
    lb = _props("AWS::ElasticLoadBalancingV2::LoadBalancer")
    idle = int(_attributes(lb, "LoadBalancerAttributes")["idle_timeout.timeout_seconds"])
    assert idle > DEFAULTS.ping_interval
    ping = template()["Parameters"]["PingInterval"]
    assert idle > int(ping["Default"]) and idle > int(ping["MaxValue"])
    assert _environment()["COLLAB_PING_INTERVAL"] == ref("PingInterval")


def test_redis_url_is_tls_and_password_comes_from_the_auth_token_secret() -> None:
    url = _environment()["COLLAB_REDIS_URL"]
    assert url == {
        "Fn::If": [
            "RedisClusterMode",
            {
                "Fn::Sub": "rediss://${Redis.ConfigurationEndPoint.Address}"
                ":${Redis.ConfigurationEndPoint.Port}/0"
            },
            {
                "Fn::Sub": "rediss://${Redis.PrimaryEndPoint.Address}:${Redis.PrimaryEndPoint.Port}/0"
            },
        ]
    }
    assert "COLLAB_REDIS_PASSWORD" not in _environment(), "a secret in plain Environment"
    secret_ref = _secrets()["COLLAB_REDIS_PASSWORD"]
    assert secret_ref["Ref"] in resources_of_type("AWS::SecretsManager::Secret")


def test_elasticache_encrypts_and_uses_the_same_auth_token_secret() -> None:
    name, rg = only_resource("AWS::ElastiCache::ReplicationGroup")
    assert name == "Redis"  # the name COLLAB_REDIS_URL's Fn::Sub refers to
    props = rg["Properties"]
    assert props["TransitEncryptionEnabled"] is True
    assert props.get("TransitEncryptionMode", "required") == "required"
    assert props["AtRestEncryptionEnabled"] is True
    secret = _secrets()["COLLAB_REDIS_PASSWORD"]["Ref"]
    assert props["AuthToken"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${" + secret + "}:SecretString}}"
    }


def test_cluster_mode_parameter_switches_elasticache_and_the_backplane() -> None:
    assert _parameter_default("RedisShards") == 0  # one primary + replicas, as before
    assert template()["Conditions"]["RedisClusterMode"] == {
        "Fn::Not": [{"Fn::Equals": [ref("RedisShards"), 0]}]
    }
    props = _props("AWS::ElastiCache::ReplicationGroup")
    no = ref("AWS::NoValue")
    assert props["NumNodeGroups"] == {"Fn::If": ["RedisClusterMode", ref("RedisShards"), no]}
    assert props["ReplicasPerNodeGroup"] == {
        "Fn::If": ["RedisClusterMode", ref("RedisReplicasPerShard"), no]
    }
    assert props["NumCacheClusters"] == {"Fn::If": ["RedisClusterMode", no, ref("CacheNodeCount")]}
    # Cluster mode is the parameter group's cluster-enabled; TLS + AUTH stay on.
    assert props["CacheParameterGroupName"] == {
        "Fn::If": ["RedisClusterMode", "default.redis7.cluster.on", no]
    }
    assert props["TransitEncryptionEnabled"] is True and "AuthToken" in props
    assert props["AutomaticFailoverEnabled"] is True
    # The task is told, with a value Settings parses.
    flag = _environment()["COLLAB_REDIS_CLUSTER"]
    assert flag == {"Fn::If": ["RedisClusterMode", "true", "false"]}
    for value in flag["Fn::If"][1:]:
        url = "rediss://h:6379/0"
        parsed = Settings.from_env({"COLLAB_REDIS_URL": url, "COLLAB_REDIS_CLUSTER": value})
        assert parsed.redis.cluster is (value == "true")


def test_auth_token_excludes_every_character_elasticache_forbids() -> None:
    secret = _secrets()["COLLAB_REDIS_PASSWORD"]["Ref"]
    generate = template()["Resources"][secret]["Properties"]["GenerateSecretString"]
    # ElastiCache: printable ASCII, and of the punctuation only ! & # $ ^ < > -
    forbidden = set(string.punctuation) - set("!&#$^<>-")
    assert set(generate["ExcludeCharacters"]) == forbidden
    assert generate.get("IncludeSpace", False) is False
    assert 16 <= generate["PasswordLength"] <= 128


def test_store_url_is_a_secret_from_rds_or_the_given_arn() -> None:
    assert "COLLAB_STORE_URL" not in _environment()
    store = _secrets()["COLLAB_STORE_URL"]
    assert store == {
        "Fn::If": ["CreateDatabase", ref("DatabaseUrlSecret"), ref("DatabaseUrlSecretArn")]
    }
    conditions = template()["Conditions"]
    assert conditions["CreateDatabase"] == {"Fn::Equals": [ref("DatabaseUrlSecretArn"), ""]}
    for kind in ("AWS::RDS::DBInstance", "AWS::RDS::DBSubnetGroup"):
        for res in resources_of_type(kind).values():
            assert res["Condition"] == "CreateDatabase"
    url = template()["Resources"]["DatabaseUrlSecret"]["Properties"]["SecretString"]["Fn::Sub"]
    assert url.startswith("postgresql://")
    db = _props("AWS::RDS::DBInstance")
    assert db["StorageEncrypted"] is True and db["PubliclyAccessible"] is False


def test_execution_role_reads_only_the_task_secrets() -> None:
    role = template()["Resources"]["ExecutionRole"]["Properties"]
    task = _props("AWS::ECS::TaskDefinition")
    assert task["ExecutionRoleArn"] == get_att("ExecutionRole", "Arn")
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    secret_statements = [
        s
        for s in statements
        if "secretsmanager:GetSecretValue"
        in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert len(secret_statements) == 1
    (statement,) = secret_statements
    assert statement["Effect"] == "Allow"
    assert sorted(map(str, statement["Resource"])) == sorted(map(str, _secrets().values()))
    for s in statements:
        assert "*" not in str(s["Resource"]) and "*" not in str(s["Action"]), s


@pytest.mark.parametrize("drain", sorted(_drain_timings(), key=int))
def test_stop_timeout_and_deregistration_delay_cover_the_drain(drain: str) -> None:
    timings = _drain_timings()[drain]
    assert int(drain) < timings["StopTimeout"] <= 120  # Fargate's maximum
    assert timings["DeregistrationDelay"] >= int(drain)


def test_drain_wiring() -> None:
    drain = template()["Parameters"]["DrainSeconds"]
    assert sorted(drain["AllowedValues"], key=int) == sorted(_drain_timings(), key=int)
    assert float(drain["Default"]) == DEFAULTS.drain_seconds
    assert _environment()["COLLAB_DRAIN_SECONDS"] == ref("DrainSeconds")
    assert _container()["StopTimeout"] == {
        "Fn::FindInMap": ["DrainTimings", ref("DrainSeconds"), "StopTimeout"]
    }
    tg = _props("AWS::ElasticLoadBalancingV2::TargetGroup")
    assert _attributes(tg, "TargetGroupAttributes")["deregistration_delay.timeout_seconds"] == {
        "Fn::FindInMap": ["DrainTimings", ref("DrainSeconds"), "DeregistrationDelay"]
    }
    # Default case, spelled out: drain 10 s < stop timeout, <= deregistration delay.
    default = _drain_timings()[str(drain["Default"])]
    assert default["StopTimeout"] > 10 and default["DeregistrationDelay"] >= 10


def test_task_definition_basics() -> None:
    task = _props("AWS::ECS::TaskDefinition")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["NetworkMode"] == "awsvpc"
    assert task["Cpu"] == ref("Cpu") and task["Memory"] == ref("Memory")
    container = _container()
    assert container["Image"] == ref("ImageUri")
    assert _environment()["COLLAB_LOG_FORMAT"] == "json"
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert container["LinuxParameters"]["InitProcessEnabled"] is True


def test_service_private_with_circuit_breaker() -> None:
    service = _props("AWS::ECS::Service")
    assert service["LaunchType"] == "FARGATE"
    vpc = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert vpc["AssignPublicIp"] == "DISABLED"
    assert vpc["Subnets"] == ref("PrivateSubnetIds")
    breaker = service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert breaker == {"Enable": True, "Rollback": True}
    lb = _props("AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert lb["Subnets"] == ref("PublicSubnetIds") and lb["Scheme"] == "internet-facing"


def test_listeners_https_with_certificate_and_http_redirect() -> None:
    listeners = {
        res["Properties"]["Port"]: res["Properties"]
        for res in resources_of_type("AWS::ElasticLoadBalancingV2::Listener").values()
    }
    assert sorted(listeners) == [80, 443]
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"] == [{"CertificateArn": ref("CertificateArn")}]
    assert https["DefaultActions"][0]["Type"] == "forward"
    redirect = listeners[80]["DefaultActions"][0]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"


def _rules() -> set[tuple[str, str, int, str]]:
    """(group, direction, port, peer) for every rule, inline or separate."""
    out = set()
    for name, res in resources_of_type("AWS::EC2::SecurityGroup").items():
        props = res["Properties"]
        for direction, key in (("in", "SecurityGroupIngress"), ("out", "SecurityGroupEgress")):
            for rule in props.get(key, []):
                if rule.get("CidrIp") == "127.0.0.1/32":
                    continue  # the "no egress" placeholder
                out.add((name, direction, int(rule.get("FromPort", -1)), str(rule.get("CidrIp"))))
    for kind, direction in (
        ("AWS::EC2::SecurityGroupIngress", "in"),
        ("AWS::EC2::SecurityGroupEgress", "out"),
    ):
        for res in resources_of_type(kind).values():
            props = res["Properties"]
            group = props["GroupId"]["Fn::GetAtt"][0]
            peer = props.get("SourceSecurityGroupId") or props.get("DestinationSecurityGroupId")
            peer_name = peer["Fn::GetAtt"][0] if peer else str(props.get("CidrIp"))
            assert props["FromPort"] == props["ToPort"]
            out.add((group, direction, int(props["FromPort"]), peer_name))
    return out


def test_security_groups_allow_only_the_needed_flows() -> None:
    assert _rules() == {
        ("LoadBalancerSecurityGroup", "in", 443, "0.0.0.0/0"),
        ("LoadBalancerSecurityGroup", "in", 80, "0.0.0.0/0"),
        ("LoadBalancerSecurityGroup", "out", 1234, "TaskSecurityGroup"),
        ("TaskSecurityGroup", "in", 1234, "LoadBalancerSecurityGroup"),
        # Health checks to the operational port (see the test above).
        ("LoadBalancerSecurityGroup", "out", _metrics_port(), "TaskSecurityGroup"),
        ("TaskSecurityGroup", "in", _metrics_port(), "LoadBalancerSecurityGroup"),
        ("TaskSecurityGroup", "out", 6379, "RedisSecurityGroup"),
        ("TaskSecurityGroup", "out", 5432, "DatabaseSecurityGroup"),
        ("TaskSecurityGroup", "out", 5432, "{'Ref': 'ExistingDatabaseCidr'}"),
        # Image pull, Secrets Manager, CloudWatch Logs (NAT or endpoints).
        ("TaskSecurityGroup", "out", 443, "0.0.0.0/0"),
        ("RedisSecurityGroup", "in", 6379, "TaskSecurityGroup"),
        ("DatabaseSecurityGroup", "in", 5432, "TaskSecurityGroup"),
    }
    redis = _props("AWS::ElastiCache::ReplicationGroup")
    assert redis["SecurityGroupIds"] == [get_att("RedisSecurityGroup", "GroupId")]
    assert redis["Port"] == 6379


def test_cpu_target_tracking_scales_the_service() -> None:
    target = _props("AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["ScalableDimension"] == "ecs:service:DesiredCount"
    assert "${Service.Name}" in target["ResourceId"]["Fn::Sub"]
    policy = _props("AWS::ApplicationAutoScaling::ScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling"
    spec = policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert spec["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"


def test_metrics_are_not_served_through_the_alb() -> None:
    (rule,) = resources_of_type("AWS::ElasticLoadBalancingV2::ListenerRule").values()
    props = rule["Properties"]
    assert props["ListenerArn"] == ref("HttpsListener")
    (condition,) = props["Conditions"]
    assert DEFAULTS.metrics_path in condition["PathPatternConfig"]["Values"]
    (action,) = props["Actions"]
    assert action["Type"] == "fixed-response"


def test_outputs_the_wss_url() -> None:
    outputs = template()["Outputs"]
    assert outputs["WebSocketUrl"]["Value"] == {"Fn::Sub": "wss://${LoadBalancer.DNSName}/"}


def test_readme_uses_only_real_parameters_and_outputs() -> None:
    text = Path(README).read_text(encoding="utf-8")
    params = set(template()["Parameters"])
    # CamelCase words before '=' are parameter overrides (shell variables
    # in the guide are UPPER_CASE).
    used = set(re.findall(r"\b([A-Z][a-z]+[A-Za-z]*)=(?!=)", text))
    assert used, "the deploy guide shows no parameter overrides"
    assert used <= params, f"README names unknown parameters: {sorted(used - params)}"
    outputs = set(template()["Outputs"])
    mentioned = set(re.findall(r"OutputKey=='(\w+)'", text))
    assert mentioned <= outputs, sorted(mentioned - outputs)
