import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_LOW: _ClassVar[Severity]
    SEVERITY_MEDIUM: _ClassVar[Severity]
    SEVERITY_HIGH: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_LOW: Severity
SEVERITY_MEDIUM: Severity
SEVERITY_HIGH: Severity
SEVERITY_CRITICAL: Severity

class AgentInfo(_message.Message):
    __slots__ = ("host", "department", "agent_version", "os", "kernel", "interval_seconds", "instance_id")
    HOST_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    host: str
    department: str
    agent_version: str
    os: str
    kernel: str
    interval_seconds: float
    instance_id: str
    def __init__(self, host: _Optional[str] = ..., department: _Optional[str] = ..., agent_version: _Optional[str] = ..., os: _Optional[str] = ..., kernel: _Optional[str] = ..., interval_seconds: _Optional[float] = ..., instance_id: _Optional[str] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("agent", "reports", "acked_sequence")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    ACKED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    agent: AgentInfo
    reports: _containers.RepeatedCompositeFieldContainer[Report]
    acked_sequence: int
    def __init__(self, agent: _Optional[_Union[AgentInfo, _Mapping]] = ..., reports: _Optional[_Iterable[_Union[Report, _Mapping]]] = ..., acked_sequence: _Optional[int] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("acked_sequence",)
    ACKED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    acked_sequence: int
    def __init__(self, acked_sequence: _Optional[int] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("sequence", "collected_at", "sources", "host", "filesystems", "spool_dropped_total", "omitted_entries", "disks", "raid_arrays", "io_errors", "backups", "data_coverage", "events", "security_stats")
    class OmittedEntriesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    FILESYSTEMS_FIELD_NUMBER: _ClassVar[int]
    SPOOL_DROPPED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    OMITTED_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    RAID_ARRAYS_FIELD_NUMBER: _ClassVar[int]
    IO_ERRORS_FIELD_NUMBER: _ClassVar[int]
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    DATA_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SECURITY_STATS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    collected_at: _timestamp_pb2.Timestamp
    sources: _containers.RepeatedCompositeFieldContainer[SourceStatus]
    host: HostHealth
    filesystems: _containers.RepeatedCompositeFieldContainer[Filesystem]
    spool_dropped_total: int
    omitted_entries: _containers.ScalarMap[str, int]
    disks: _containers.RepeatedCompositeFieldContainer[Disk]
    raid_arrays: _containers.RepeatedCompositeFieldContainer[RaidArray]
    io_errors: _containers.RepeatedCompositeFieldContainer[DeviceIoErrors]
    backups: _containers.RepeatedCompositeFieldContainer[Backup]
    data_coverage: DataCoverage
    events: _containers.RepeatedCompositeFieldContainer[SecurityEvent]
    security_stats: SecurityStats
    def __init__(self, sequence: _Optional[int] = ..., collected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sources: _Optional[_Iterable[_Union[SourceStatus, _Mapping]]] = ..., host: _Optional[_Union[HostHealth, _Mapping]] = ..., filesystems: _Optional[_Iterable[_Union[Filesystem, _Mapping]]] = ..., spool_dropped_total: _Optional[int] = ..., omitted_entries: _Optional[_Mapping[str, int]] = ..., disks: _Optional[_Iterable[_Union[Disk, _Mapping]]] = ..., raid_arrays: _Optional[_Iterable[_Union[RaidArray, _Mapping]]] = ..., io_errors: _Optional[_Iterable[_Union[DeviceIoErrors, _Mapping]]] = ..., backups: _Optional[_Iterable[_Union[Backup, _Mapping]]] = ..., data_coverage: _Optional[_Union[DataCoverage, _Mapping]] = ..., events: _Optional[_Iterable[_Union[SecurityEvent, _Mapping]]] = ..., security_stats: _Optional[_Union[SecurityStats, _Mapping]] = ...) -> None: ...

class SourceStatus(_message.Message):
    __slots__ = ("name", "success", "duration_seconds", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    success: bool
    duration_seconds: float
    error: str
    def __init__(self, name: _Optional[str] = ..., success: bool = ..., duration_seconds: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class HostHealth(_message.Message):
    __slots__ = ("cpu_utilization_ratio", "cpu_count", "memory_total_bytes", "memory_available_bytes", "swap_total_bytes", "swap_used_bytes", "load1", "load5", "load15", "boot_time_seconds", "processes")
    CPU_UTILIZATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SWAP_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SWAP_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOAD1_FIELD_NUMBER: _ClassVar[int]
    LOAD5_FIELD_NUMBER: _ClassVar[int]
    LOAD15_FIELD_NUMBER: _ClassVar[int]
    BOOT_TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    cpu_utilization_ratio: float
    cpu_count: int
    memory_total_bytes: int
    memory_available_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    load1: float
    load5: float
    load15: float
    boot_time_seconds: float
    processes: int
    def __init__(self, cpu_utilization_ratio: _Optional[float] = ..., cpu_count: _Optional[int] = ..., memory_total_bytes: _Optional[int] = ..., memory_available_bytes: _Optional[int] = ..., swap_total_bytes: _Optional[int] = ..., swap_used_bytes: _Optional[int] = ..., load1: _Optional[float] = ..., load5: _Optional[float] = ..., load15: _Optional[float] = ..., boot_time_seconds: _Optional[float] = ..., processes: _Optional[int] = ...) -> None: ...

class Filesystem(_message.Message):
    __slots__ = ("mountpoint", "device", "fstype", "size_bytes", "avail_bytes", "free_bytes", "files", "files_free", "readonly", "error")
    MOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    FSTYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    AVAIL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    FILES_FREE_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    mountpoint: str
    device: str
    fstype: str
    size_bytes: int
    avail_bytes: int
    free_bytes: int
    files: int
    files_free: int
    readonly: bool
    error: str
    def __init__(self, mountpoint: _Optional[str] = ..., device: _Optional[str] = ..., fstype: _Optional[str] = ..., size_bytes: _Optional[int] = ..., avail_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ..., files: _Optional[int] = ..., files_free: _Optional[int] = ..., readonly: bool = ..., error: _Optional[str] = ...) -> None: ...

class Disk(_message.Message):
    __slots__ = ("device", "model", "serial", "protocol", "smart_available", "healthy", "in_standby", "read_at", "temperature_celsius", "power_on_hours", "attributes", "nvme_critical_warning", "nvme_media_errors", "nvme_percentage_used", "smartctl_exit_status", "error")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SMART_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    IN_STANDBY_FIELD_NUMBER: _ClassVar[int]
    READ_AT_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_CELSIUS_FIELD_NUMBER: _ClassVar[int]
    POWER_ON_HOURS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    NVME_CRITICAL_WARNING_FIELD_NUMBER: _ClassVar[int]
    NVME_MEDIA_ERRORS_FIELD_NUMBER: _ClassVar[int]
    NVME_PERCENTAGE_USED_FIELD_NUMBER: _ClassVar[int]
    SMARTCTL_EXIT_STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    device: str
    model: str
    serial: str
    protocol: str
    smart_available: bool
    healthy: bool
    in_standby: bool
    read_at: _timestamp_pb2.Timestamp
    temperature_celsius: float
    power_on_hours: int
    attributes: _containers.RepeatedCompositeFieldContainer[SmartAttribute]
    nvme_critical_warning: int
    nvme_media_errors: int
    nvme_percentage_used: int
    smartctl_exit_status: int
    error: str
    def __init__(self, device: _Optional[str] = ..., model: _Optional[str] = ..., serial: _Optional[str] = ..., protocol: _Optional[str] = ..., smart_available: bool = ..., healthy: bool = ..., in_standby: bool = ..., read_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., temperature_celsius: _Optional[float] = ..., power_on_hours: _Optional[int] = ..., attributes: _Optional[_Iterable[_Union[SmartAttribute, _Mapping]]] = ..., nvme_critical_warning: _Optional[int] = ..., nvme_media_errors: _Optional[int] = ..., nvme_percentage_used: _Optional[int] = ..., smartctl_exit_status: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class SmartAttribute(_message.Message):
    __slots__ = ("id", "name", "raw", "value", "worst", "threshold", "failing_now")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WORST_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FAILING_NOW_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    raw: int
    value: int
    worst: int
    threshold: int
    failing_now: bool
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., raw: _Optional[int] = ..., value: _Optional[int] = ..., worst: _Optional[int] = ..., threshold: _Optional[int] = ..., failing_now: bool = ...) -> None: ...

class RaidArray(_message.Message):
    __slots__ = ("name", "level", "state", "disks_active", "disks_total", "disks_failed", "disks_spare", "degraded", "sync_action", "sync_progress_ratio", "members", "failed_members")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DISKS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    DISKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DISKS_FAILED_FIELD_NUMBER: _ClassVar[int]
    DISKS_SPARE_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    SYNC_ACTION_FIELD_NUMBER: _ClassVar[int]
    SYNC_PROGRESS_RATIO_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    FAILED_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    level: str
    state: str
    disks_active: int
    disks_total: int
    disks_failed: int
    disks_spare: int
    degraded: bool
    sync_action: str
    sync_progress_ratio: float
    members: _containers.RepeatedScalarFieldContainer[str]
    failed_members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., level: _Optional[str] = ..., state: _Optional[str] = ..., disks_active: _Optional[int] = ..., disks_total: _Optional[int] = ..., disks_failed: _Optional[int] = ..., disks_spare: _Optional[int] = ..., degraded: bool = ..., sync_action: _Optional[str] = ..., sync_progress_ratio: _Optional[float] = ..., members: _Optional[_Iterable[str]] = ..., failed_members: _Optional[_Iterable[str]] = ...) -> None: ...

class DeviceIoErrors(_message.Message):
    __slots__ = ("device", "errors_total", "last_error_at", "last_message")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ERRORS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    device: str
    errors_total: int
    last_error_at: _timestamp_pb2.Timestamp
    last_message: str
    def __init__(self, device: _Optional[str] = ..., errors_total: _Optional[int] = ..., last_error_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_message: _Optional[str] = ...) -> None: ...

class Backup(_message.Message):
    __slots__ = ("job", "kind", "rpo_seconds", "last_success", "last_run", "last_run_success", "size_bytes", "message", "same_device", "shared_disks", "source_configured", "last_verified", "last_verify_success", "verify_every_seconds", "min_size_bytes", "error", "restore_test", "restore_test_every_seconds", "copy_location")
    JOB_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RPO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SAME_DEVICE_FIELD_NUMBER: _ClassVar[int]
    SHARED_DISKS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    LAST_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    LAST_VERIFY_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    VERIFY_EVERY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MIN_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESTORE_TEST_FIELD_NUMBER: _ClassVar[int]
    RESTORE_TEST_EVERY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COPY_LOCATION_FIELD_NUMBER: _ClassVar[int]
    job: str
    kind: str
    rpo_seconds: float
    last_success: _timestamp_pb2.Timestamp
    last_run: _timestamp_pb2.Timestamp
    last_run_success: bool
    size_bytes: int
    message: str
    same_device: bool
    shared_disks: _containers.RepeatedScalarFieldContainer[str]
    source_configured: bool
    last_verified: _timestamp_pb2.Timestamp
    last_verify_success: bool
    verify_every_seconds: float
    min_size_bytes: int
    error: str
    restore_test: RestoreTest
    restore_test_every_seconds: float
    copy_location: str
    def __init__(self, job: _Optional[str] = ..., kind: _Optional[str] = ..., rpo_seconds: _Optional[float] = ..., last_success: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_run: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_run_success: bool = ..., size_bytes: _Optional[int] = ..., message: _Optional[str] = ..., same_device: bool = ..., shared_disks: _Optional[_Iterable[str]] = ..., source_configured: bool = ..., last_verified: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_verify_success: bool = ..., verify_every_seconds: _Optional[float] = ..., min_size_bytes: _Optional[int] = ..., error: _Optional[str] = ..., restore_test: _Optional[_Union[RestoreTest, _Mapping]] = ..., restore_test_every_seconds: _Optional[float] = ..., copy_location: _Optional[str] = ...) -> None: ...

class DataCoverage(_message.Message):
    __slots__ = ("discovered_at", "locations", "incomplete")
    DISCOVERED_AT_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_FIELD_NUMBER: _ClassVar[int]
    discovered_at: _timestamp_pb2.Timestamp
    locations: _containers.RepeatedCompositeFieldContainer[DataLocation]
    incomplete: str
    def __init__(self, discovered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., locations: _Optional[_Iterable[_Union[DataLocation, _Mapping]]] = ..., incomplete: _Optional[str] = ...) -> None: ...

class DataLocation(_message.Message):
    __slots__ = ("path", "kind", "owner", "backed_up", "covered_by")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    BACKED_UP_FIELD_NUMBER: _ClassVar[int]
    COVERED_BY_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: str
    owner: str
    backed_up: bool
    covered_by: str
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[str] = ..., owner: _Optional[str] = ..., backed_up: bool = ..., covered_by: _Optional[str] = ...) -> None: ...

class RestoreTest(_message.Message):
    __slots__ = ("time", "success", "files", "bytes", "skipped", "mismatches", "mismatch_count", "duration_seconds", "message", "last_success")
    TIME_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    MISMATCH_COUNT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    success: bool
    files: int
    bytes: int
    skipped: int
    mismatches: _containers.RepeatedScalarFieldContainer[str]
    mismatch_count: int
    duration_seconds: float
    message: str
    last_success: _timestamp_pb2.Timestamp
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., success: bool = ..., files: _Optional[int] = ..., bytes: _Optional[int] = ..., skipped: _Optional[int] = ..., mismatches: _Optional[_Iterable[str]] = ..., mismatch_count: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., message: _Optional[str] = ..., last_success: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SecurityEvent(_message.Message):
    __slots__ = ("time", "type", "severity", "technique", "user", "source_address", "process", "raw", "source", "path", "port", "protocol", "tags", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    TECHNIQUE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    type: str
    severity: Severity
    technique: str
    user: str
    source_address: str
    process: str
    raw: str
    source: str
    path: str
    port: int
    protocol: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    details: _containers.ScalarMap[str, str]
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., technique: _Optional[str] = ..., user: _Optional[str] = ..., source_address: _Optional[str] = ..., process: _Optional[str] = ..., raw: _Optional[str] = ..., source: _Optional[str] = ..., path: _Optional[str] = ..., port: _Optional[int] = ..., protocol: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SecurityStats(_message.Message):
    __slots__ = ("lines_read", "lines_unrecognised", "lines_oversized", "events_deferred")
    LINES_READ_FIELD_NUMBER: _ClassVar[int]
    LINES_UNRECOGNISED_FIELD_NUMBER: _ClassVar[int]
    LINES_OVERSIZED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_DEFERRED_FIELD_NUMBER: _ClassVar[int]
    lines_read: int
    lines_unrecognised: int
    lines_oversized: int
    events_deferred: int
    def __init__(self, lines_read: _Optional[int] = ..., lines_unrecognised: _Optional[int] = ..., lines_oversized: _Optional[int] = ..., events_deferred: _Optional[int] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("token", "host", "department", "csr_pem")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    token: str
    host: str
    department: str
    csr_pem: bytes
    def __init__(self, token: _Optional[str] = ..., host: _Optional[str] = ..., department: _Optional[str] = ..., csr_pem: _Optional[bytes] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("certificate_pem", "ca_pem")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    ca_pem: bytes
    def __init__(self, certificate_pem: _Optional[bytes] = ..., ca_pem: _Optional[bytes] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: bytes
    def __init__(self, csr_pem: _Optional[bytes] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("certificate_pem", "ca_pem")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    ca_pem: bytes
    def __init__(self, certificate_pem: _Optional[bytes] = ..., ca_pem: _Optional[bytes] = ...) -> None: ...
