import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
    __slots__ = ("agent", "reports")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    agent: AgentInfo
    reports: _containers.RepeatedCompositeFieldContainer[Report]
    def __init__(self, agent: _Optional[_Union[AgentInfo, _Mapping]] = ..., reports: _Optional[_Iterable[_Union[Report, _Mapping]]] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("acked_sequence",)
    ACKED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    acked_sequence: int
    def __init__(self, acked_sequence: _Optional[int] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("sequence", "collected_at", "sources", "host", "filesystems", "spool_dropped_total")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    FILESYSTEMS_FIELD_NUMBER: _ClassVar[int]
    SPOOL_DROPPED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    collected_at: _timestamp_pb2.Timestamp
    sources: _containers.RepeatedCompositeFieldContainer[SourceStatus]
    host: HostHealth
    filesystems: _containers.RepeatedCompositeFieldContainer[Filesystem]
    spool_dropped_total: int
    def __init__(self, sequence: _Optional[int] = ..., collected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sources: _Optional[_Iterable[_Union[SourceStatus, _Mapping]]] = ..., host: _Optional[_Union[HostHealth, _Mapping]] = ..., filesystems: _Optional[_Iterable[_Union[Filesystem, _Mapping]]] = ..., spool_dropped_total: _Optional[int] = ...) -> None: ...

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
