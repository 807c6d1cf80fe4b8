"""Cloud DNS + global IP: DNSSEC, records inside the zone, delegation outputs."""

from __future__ import annotations

import pulumi
import pytest

from infra.dns import DnsArgs, DnsRecord, PublicDns, planned_records, txt_value
from infra.validation import ArgsError
from stacks import plan as plan_engine

ARGS = DnsArgs(
    project="p-123456", domain="celery.example.com.", mx=("10 mx.example.net.",), spf="v=spf1 -all"
)


def records_by_key(args: DnsArgs) -> dict:
    return {(name, kind): rrdatas for _, name, kind, rrdatas, _ in planned_records(args, "IP")}


def test_apex_and_wildcard_point_at_the_global_ip():
    records = records_by_key(ARGS)
    assert records[("celery.example.com.", "A")] == ["IP"]
    assert records[("*.celery.example.com.", "A")] == ["IP"]


def test_mx_spf_and_caa_are_published():
    records = records_by_key(ARGS)
    assert records[("celery.example.com.", "MX")] == ["10 mx.example.net."]
    assert records[("celery.example.com.", "TXT")] == ['"v=spf1 -all"']
    assert records[("celery.example.com.", "CAA")] == [
        '0 issue "pki.goog"',
        '0 issue "letsencrypt.org"',
    ]


def test_long_txt_values_are_split_into_255_character_strings():
    value = txt_value("v=spf1 " + "a" * 300)
    assert value.count('" "') == 1 and all(len(part) <= 257 for part in value.split(" "))


def test_wildcard_can_be_switched_off():
    args = DnsArgs(project="p-123456", domain="example.com.", wildcard=False)
    assert ("*.example.com.", "A") not in records_by_key(args)


@pytest.mark.parametrize("domain", ["example.com", "Example.com.", "*.example.com."])
def test_domain_must_be_absolute_lower_case_and_concrete(domain):
    with pytest.raises(ArgsError, match=r"DnsArgs\.domain"):
        DnsArgs(project="p", domain=domain)


def test_records_outside_the_zone_are_refused():
    with pytest.raises(ArgsError, match=r"records\[0\].name.*inside the zone"):
        DnsArgs(
            project="p",
            domain="example.com.",
            records=(
                DnsRecord(name="www.example.com.evil.org.", type="A", rrdatas=("192.0.2.1",)),
            ),
        )


def test_a_record_name_that_merely_ends_like_the_zone_is_outside_it():
    with pytest.raises(ArgsError):
        DnsArgs(
            project="p",
            domain="example.com.",
            records=(DnsRecord(name="notexample.com.", type="A", rrdatas=("192.0.2.1",)),),
        )


def test_records_the_component_manages_cannot_be_redefined():
    with pytest.raises(ArgsError, match="does not already manage"):
        DnsArgs(
            project="p",
            domain="example.com.",
            records=(DnsRecord(name="example.com.", type="A", rrdatas=("192.0.2.1",)),),
        )


@pytest.mark.parametrize("mx", ["mx.example.net.", "10 mx.example.net", "ten mx.example.net."])
def test_mx_values_need_priority_and_absolute_host(mx):
    with pytest.raises(ArgsError, match=r"DnsArgs\.mx"):
        DnsArgs(project="p", domain="example.com.", mx=(mx,))


def test_spf_must_be_an_spf_policy():
    with pytest.raises(ArgsError, match="v=spf1"):
        DnsArgs(project="p", domain="example.com.", spf="include:_spf.google.com")


def test_extra_records_are_created_inside_the_zone():
    args = DnsArgs(
        project="p",
        domain="example.com.",
        records=(
            DnsRecord(name="api.example.com.", type="CNAME", rrdatas=("example.com.",)),
            DnsRecord(name="example.com.", type="SRV", rrdatas=("0 5 5060 sip.example.com.",)),
        ),
    )
    records = records_by_key(args)
    assert records[("api.example.com.", "CNAME")] == ["example.com."]


def test_component_signs_the_zone_and_binds_records_to_it():
    graph = plan_engine.run_program(lambda: PublicDns("dns", ARGS))
    [zone] = graph.of_type("gcp:dns/managedZone:ManagedZone")
    assert zone.inputs["dnssecConfig"] == {"state": "on", "nonExistence": "nsec3"}
    assert zone.inputs["visibility"] == "public"
    assert zone.inputs["dnsName"] == "celery.example.com."
    record_sets = graph.of_type("gcp:dns/recordSet:RecordSet")
    assert len(record_sets) == 5
    assert all(r.inputs["managedZone"] == "celery-example-com" for r in record_sets)
    [address] = graph.of_type("gcp:compute/globalAddress:GlobalAddress")
    apex = next(r for r in record_sets if r.name == "dns-apex-a")
    assert apex.inputs["rrdatas"] == ["203.0.113.20"]
    assert address.inputs["name"] == "dns-ip"


@pulumi.runtime.test
def test_delegation_outputs_name_servers_and_ds_record():
    pulumi.runtime.set_mocks(
        plan_engine.PlanMocks(), project="ha-celery", stack="test", preview=False
    )
    dns = PublicDns("dns", ARGS)

    def check(values):
        name_servers, ds_record, address_name = values
        assert len(name_servers) == 4
        assert ds_record == "2371 8 2 PLANDSRECORDDIGEST"
        assert address_name == "dns-ip"

    return pulumi.Output.all(dns.name_servers, dns.ds_record, dns.address_name).apply(check)


def test_the_zone_is_protected_and_a_new_domain_keeps_the_sites_ip():
    from stacks.plan import compare

    def plan(args):
        return [r.to_json() for r in plan_engine.run_program(
            lambda: PublicDns("dns", args)).resources]

    before = plan(ARGS)
    [zone] = [r for r in before if r["type"] == "gcp:dns/managedZone:ManagedZone"]
    assert zone["options"]["protect"] is True
    after = plan(DnsArgs(project=ARGS.project, domain="celery.example.org."))
    result = compare.review(before, after)
    actions = {c.name: c.action for c in result.changes}
    # The zone and its records are new (their names are the domain) ...
    assert actions["dns-zone"] == "replace"
    # ... but the address, whose description names the domain (ForceNew), is kept.
    assert "dns-ip" not in actions
