#!/usr/bin/env python3
"""A client in another language that knows nothing of antrean's .proto files: it reads the API through gRPC server
reflection, then checks the applicant's form (CheckApplicant: a mistyped birth date is refused as Hold would refuse it,
the corrected form passes), books, pays, corrects the name (AmendBooking) and cancels.
Usage: python3 scripts/reflection_client.py [127.0.0.1:50051]
Needs: pip install grpcio grpcio-reflection protobuf
"""
import datetime
import sys
import uuid

import grpc
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main(target):
    channel = grpc.insecure_channel(target)
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    services = [name for name in database.get_services() if name.startswith("antrean.")]
    print("services:", ", ".join(services))
    booking = pool.FindServiceByName("antrean.v1.BookingService")

    def call(method_name, body):
        method = booking.FindMethodByName(method_name)
        request_class = GetMessageClass(method.input_type)
        response_class = GetMessageClass(method.output_type)
        stub = channel.unary_unary(
            f"/{booking.full_name}/{method_name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = stub(json_format.ParseDict(body, request_class()))
        return json_format.MessageToDict(response)

    offices = call("ListOffices", {})["offices"]
    office = next(each for each in offices if each["officeId"] == "kanim-batam")
    today = datetime.date.today()
    days = [today + datetime.timedelta(days=offset) for offset in range(2, 12)]
    as_date = lambda day: {"year": day.year, "month": day.month, "day": day.day}
    availability = call("GetAvailability", {"officeId": office["officeId"], "service": "SERVICE_TYPE_NEW_PASSPORT",
                                            "firstDate": as_date(days[0]), "lastDate": as_date(days[-1])})
    session = next(each for each in availability["sessions"]
                   if any(pool["pool"] == "POOL_REGULAR" and pool["state"] == "SESSION_STATE_OPEN" for pool in each["pools"]))
    serial = uuid.uuid4().int % 1000
    hold = {
        "requestId": f"py-{uuid.uuid4()}", "officeId": office["officeId"], "service": "SERVICE_TYPE_NEW_PASSPORT",
        "date": session["date"], "sessionId": session["sessionId"], "pool": "POOL_REGULAR", "accountId": "py-client",
        "applicant": {"nik": f"3171015708850{serial:03d}", "fullName": "Dewi Lestrai",
                      "birthDate": {"year": 1985, "month": 8, "day": 18}},
    }
    # When the applicant saves the form: the birth date was mistyped, and CheckApplicant says so exactly as Hold would
    # (INVALID_ARGUMENT, field applicant.nik), without taking a slot or writing anything.
    try:
        call("CheckApplicant", {"single": hold})
        raise AssertionError("a NIK that does not match the birth date must be refused")
    except grpc.RpcError as refused:
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused
        print("check refused:", refused.code().name, refused.details())
    hold["applicant"]["birthDate"]["day"] = 17
    checked = call("CheckApplicant", {"single": hold})
    finding = checked["applicants"][0]
    print("check passed:", checked.get("sessionState"), "remaining", checked.get("remaining", 0),
          "active bookings", finding.get("activeBookingIds", []), "in line", finding.get("waitingRoomTicketId", "no"))
    held = call("Hold", hold)["booking"]
    print("held:", held["bookingId"], held["state"], "pay before", held["paymentDeadline"])
    paid = call("ConfirmPayment", {"requestId": f"py-{uuid.uuid4()}", "bookingId": held["bookingId"],
                                   "paymentReference": f"SIMPONI-{serial}"})["booking"]
    print("paid:", paid["bookingId"], paid["state"])
    # The name was mistyped too: corrected without losing the slot or the payment.
    amended = call("AmendBooking", {"requestId": f"py-{uuid.uuid4()}", "bookingId": held["bookingId"],
                                    "fullName": "Dewi Lestari"})["booking"]
    print("amended:", amended["bookingId"], amended["applicant"]["fullName"], "amendments", amended["amendmentsUsed"])
    assert (amended["sessionId"], amended["paymentReference"]) == (paid["sessionId"], paid["paymentReference"])
    cancelled = call("Cancel", {"requestId": f"py-{uuid.uuid4()}", "bookingId": held["bookingId"]})["booking"]
    print("cancelled:", cancelled["bookingId"], cancelled["state"])
    assert (held["state"], paid["state"], cancelled["state"]) == (
        "BOOKING_STATE_AWAITING_PAYMENT", "BOOKING_STATE_CONFIRMED", "BOOKING_STATE_CANCELLED")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
