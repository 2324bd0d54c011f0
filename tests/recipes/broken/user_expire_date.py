# error: {path}:4: user[deploy]: expire_date '2027-02-30' is not a date such as '2027-06-30' (or 'never')
from converge import user

user("deploy", expire_date="2027-02-30")
