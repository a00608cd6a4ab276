#!/usr/bin/python3
"""generate-gen.py - write the gen-*.eml fixtures of tests/mime (run offline, once).

Messages as a MUA writes them, with Python's email package (policy SMTP:
CRLF line ends, long non-ASCII header fields split into several RFC 2047
encoded-words, base64 words that end in '=' padding in the middle of a
field).  Used by tests/unit/test_mime_roundtrip.c; the output is stored, so
the tests never run Python.  Run from tests/mime:  /usr/bin/python3 generate-gen.py
(Python 3.11 gives the stored bytes.)
"""
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
import datetime

DATE = format_datetime(datetime.datetime(2024, 3, 5, 10, 15, tzinfo=datetime.timezone.utc))


def base(subject, frm, to, cc=None):
    m = EmailMessage(policy=policy.SMTP)
    m['From'] = frm
    m['To'] = to
    if cc:
        m['Cc'] = cc
    m['Date'] = DATE
    m['Subject'] = subject
    base.count += 1
    m['Message-ID'] = '<gen.%d@example.org>' % base.count
    return m


base.count = 0


def write(name, m):
    if m.is_multipart():
        m.set_boundary('gen-boundary-%s' % name)   # fixed, so the output is reproducible
    data = m.as_bytes(policy=policy.SMTP)
    with open(name, 'wb') as f:
        f.write(data)


# Cyrillic: a long subject and long display names, each split into several
# base64 words, early ones ending in '=' (GMime issue #133).
m = base('Отчёт о проделанной работе за третий квартал: итоги, планы и предложения по улучшению',
         'Александра Владимировна Константинопольская-Преображенская <alex@example.ru>',
         'Ελευθέριος Παπαδόπουλος-Καραγιαννόπουλος <el@example.gr>, '
         'Пётр Ильич Чайковский-Римский-Корсаков <peter@example.ru>')
m.set_content('Здравствуйте, коллеги!\n\nВо вложении отчёт за третий квартал. '
              'Съешь же ещё этих мягких французских булок да выпей чаю.\n')
m.add_attachment('квартал;итоги\n1;2\n'.encode('utf-8'), maintype='text', subtype='csv',
                 filename='Отчёт за третий квартал (итоговый вариант).csv')
write('gen-cyrillic-long-headers.eml', m)

# Greek subject and body, CJK and emoji in names, a Cc list of several names.
m = base('Συνάντηση την Τρίτη για τον προϋπολογισμό του επόμενου έτους και τα νέα έργα — 会議 🎉',
         '山田 太郎 (営業部 東京本社 第一営業課) <taro@example.jp>',
         'Γιώργος Παπαδόπουλος <g@example.gr>',
         '李小龍 <lee@example.cn>, 🎉 Party Planning Committee 🎈🎂 <party@example.org>, '
         'Zoë Ångström-Łukasiewicz <zoe@example.se>')
m.set_content('Καλημέρα σας,\n\nη συνάντηση θα γίνει την Τρίτη στις 10:00.\n'
              '会議は火曜日の午前十時です。\n🎉🎈 Ευχαριστώ!\n')
write('gen-greek-cjk-emoji.eml', m)

# One body line of 5,000 characters (Latin-1 and beyond), a long subject in
# quoted-printable words, an attachment with a long non-ASCII RFC 2231 name.
line = ''.join('Ça fait déjà %d ans — naïve façade, Œuvre, € %d; ' % (i, i) for i in range(200))
line = line[:5000]
m = base('Réunion annuelle des délégués régionaux: ordre du jour, procès-verbal et résolutions adoptées à l’unanimité',
         'Françoise Bézier-Dupont <francoise@example.fr>',
         'Jürgen Groß <juergen@example.de>')
m.set_content(line + '\n', charset='utf-8', cte='quoted-printable')
m.add_attachment(bytes(range(256)) * 4, maintype='application', subtype='octet-stream',
                 filename='Procès-verbal de la réunion annuelle des délégués régionaux — version définitive.bin')
write('gen-long-line.eml', m)

# As Outlook and Thunderbird write a long non-ASCII file name: RFC 2047
# words inside a quoted parameter value (not RFC 2231), split like any header
# by email.header.Header (compat32), early base64 words ending in '='.
from email.header import Header
import base64


def words(text):
    return Header(text, 'utf-8', maxlinelen=76).encode().replace('\n', '\r\n')


name = 'Сводная ведомость расходов по командировкам за апрель.xlsx'
data = b'PK\x03\x04 not really a spreadsheet \x00\x01\x02\xff' * 3
text = ('From: %s <olga@example.ru>\r\n'
        'To: =?utf-8?q?Gr=C3=BC=C3=9Fe?= <a@example.org>\r\n'
        'Date: %s\r\n'
        'Subject: %s\r\n'
        'Message-ID: <gen.outlook@example.org>\r\n'
        'MIME-Version: 1.0\r\n'
        'Content-Type: multipart/mixed; boundary="outlook-b"\r\n\r\n'
        '--outlook-b\r\nContent-Type: text/plain; charset="utf-8"\r\n'
        'Content-Transfer-Encoding: base64\r\n\r\n%s\r\n'
        '--outlook-b\r\nContent-Type: application/vnd.ms-excel;\r\n name="%s"\r\n'
        'Content-Disposition: attachment;\r\n filename="%s"\r\n'
        'Content-Transfer-Encoding: base64\r\n\r\n%s\r\n'
        '--outlook-b--\r\n') % (
    words('Ольга Сергеевна Новикова-Прибой (бухгалтерия)'), DATE,
    words('Сводная ведомость расходов по командировкам за апрель — исправленная'),
    base64.encodebytes('Ольга прислала ведомость.\n'.encode()).decode().strip(),
    words(name), words(name),
    base64.encodebytes(data).decode().strip().replace('\n', '\r\n'))
with open('gen-outlook-filename.eml', 'wb') as f:
    f.write(text.encode('ascii'))
